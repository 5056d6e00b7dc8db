/* tinykiln TFLite_Detection_PostProcess: the non-maximum suppression after the box decoding
 * (ops/detection.py decodes the boxes and dequantizes the scores with TVM, then calls this).
 *
 * The order of every comparison and float operation is LiteRT's (detection_postprocess.cc), so the
 * outputs are bit-exact with it:
 *   - one class: scores >= threshold kept, stably sorted by decreasing score (ties: lower anchor
 *     first), each kept box suppresses the later ones with IoU > iou threshold, at most max_out;
 *   - fast: per anchor the top classes (one: the first maximum; more: the order std::partial_sort
 *     leaves them in with libstdc++, a heap select then a heap sort, repeated here step for step so
 *     that tied scores come out in the same order), NMS over each anchor's best score;
 *   - regular: NMS per class, each class's list merged stably into the running one by decreasing
 *     score (ties: the earlier class first), cut to max_detections.
 * The outputs arrive zeroed (the TVM part writes zeros first); rows without a detection stay zero.
 *
 * Work areas (sizes from ops/detection.py work_sizes, n boxes, ncat = min(per_detection, classes)):
 *   iwork: keep index, sort order, sort temp, active flags, selected (n each), top classes per
 *          anchor (n * ncat), a heap (num_classes), merged indices and their temp (2 * max_det each)
 *   fwork: kept scores (n), scores of one class / best scores (n), merged scores and temp (2 * max_det each)
 */
#ifndef TK_MK_DETECT_H
#define TK_MK_DETECT_H

#include <stdint.h>

#include "tk_mk.h"

/* std::max / std::min on floats: the first argument unless the second is strictly beyond it */
TK_MK_INLINE float tk_mk_det_max(float a, float b) { return a < b ? b : a; }
TK_MK_INLINE float tk_mk_det_min(float a, float b) { return b < a ? b : a; }

/* IoU of decoded boxes i and j (ymin, xmin, ymax, xmax), 0 if either has no area */
TK_MK_INLINE float tk_mk_det_iou(const float *boxes, int32_t i, int32_t j)
{
    const float *a = boxes + 4 * i, *b = boxes + 4 * j;
    const float area_a = (a[2] - a[0]) * (a[3] - a[1]);
    const float area_b = (b[2] - b[0]) * (b[3] - b[1]);
    if (area_a <= 0 || area_b <= 0) {
        return 0.0f;
    }
    const float ymin = tk_mk_det_max(a[0], b[0]), xmin = tk_mk_det_max(a[1], b[1]);
    const float ymax = tk_mk_det_min(a[2], b[2]), xmax = tk_mk_det_min(a[3], b[3]);
    const float inter = tk_mk_det_max(ymax - ymin, 0.0f) * tk_mk_det_max(xmax - xmin, 0.0f);
    return inter / (area_a + area_b - inter);
}

/* order[0..n) = 0..n-1 stably sorted by decreasing values[order[i]] (bottom-up merge sort) */
static inline void tk_mk_det_stable_sort(const float *values, int32_t n, int32_t *order, int32_t *tmp)
{
    for (int32_t i = 0; i < n; i++) {
        order[i] = i;
    }
    for (int32_t width = 1; width < n; width *= 2) {
        for (int32_t lo = 0; lo < n; lo += 2 * width) {
            int32_t mid = lo + width < n ? lo + width : n;
            int32_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            int32_t l = lo, r = mid, o = lo;
            while (l < mid && r < hi) {
                /* the right run's element goes first only if strictly greater: stable */
                tmp[o++] = values[order[r]] > values[order[l]] ? order[r++] : order[l++];
            }
            while (l < mid) {
                tmp[o++] = order[l++];
            }
            while (r < hi) {
                tmp[o++] = order[r++];
            }
        }
        for (int32_t i = 0; i < n; i++) {
            order[i] = tmp[i];
        }
    }
}

/* NMS of one score per box; returns the number of boxes written to selected (box indices) */
static inline int32_t tk_mk_det_nms1(const float *boxes, const float *scores, int32_t n, float score_threshold,
                              float iou_threshold, int32_t max_out, int32_t *iwork, float *kept_scores,
                              int32_t *selected)
{
    int32_t *keep = iwork, *order = iwork + n, *tmp = iwork + 2 * n, *active = iwork + 3 * n;
    int32_t kept = 0;
    for (int32_t i = 0; i < n; i++) {
        if (scores[i] >= score_threshold) {
            kept_scores[kept] = scores[i];
            keep[kept++] = i;
        }
    }
    tk_mk_det_stable_sort(kept_scores, kept, order, tmp);
    const int32_t out_size = kept < max_out ? kept : max_out;
    for (int32_t i = 0; i < kept; i++) {
        active[i] = 1;
    }
    int32_t num_active = kept, count = 0;
    for (int32_t i = 0; i < kept; i++) {
        if (num_active == 0 || count >= out_size) {
            break;
        }
        if (!active[i]) {
            continue;
        }
        selected[count++] = keep[order[i]];
        active[i] = 0;
        num_active--;
        for (int32_t j = i + 1; j < kept; j++) {
            if (active[j] && tk_mk_det_iou(boxes, keep[order[i]], keep[order[j]]) > iou_threshold) {
                active[j] = 0;
                num_active--;
            }
        }
    }
    return count;
}

/* libstdc++'s heap steps under "a before b" = values[a] > values[b] */
TK_MK_INLINE int tk_mk_det_before(const float *values, int32_t a, int32_t b) { return values[a] > values[b]; }

static inline void tk_mk_det_adjust_heap(const float *values, int32_t *h, int32_t hole, int32_t len, int32_t value)
{
    const int32_t top = hole;
    int32_t child = hole;
    while (child < (len - 1) / 2) {
        child = 2 * (child + 1);
        if (tk_mk_det_before(values, h[child], h[child - 1])) {
            child--;
        }
        h[hole] = h[child];
        hole = child;
    }
    if ((len & 1) == 0 && child == (len - 2) / 2) {
        child = 2 * (child + 1);
        h[hole] = h[child - 1];
        hole = child - 1;
    }
    int32_t parent = (hole - 1) / 2;
    while (hole > top && tk_mk_det_before(values, h[parent], value)) {
        h[hole] = h[parent];
        hole = parent;
        parent = (hole - 1) / 2;
    }
    h[hole] = value;
}

static inline void tk_mk_det_pop_heap(const float *values, int32_t *h, int32_t len, int32_t result)
{
    const int32_t value = h[result];
    h[result] = h[0];
    tk_mk_det_adjust_heap(values, h, 0, len, value);
}

/* h[0..middle) = the first `middle` indices of 0..len-1 by decreasing value, as std::partial_sort */
static inline void tk_mk_det_partial_sort(const float *values, int32_t len, int32_t middle, int32_t *h)
{
    for (int32_t i = 0; i < len; i++) {
        h[i] = i;
    }
    if (middle >= 2) {
        for (int32_t parent = (middle - 2) / 2; parent >= 0; parent--) {
            tk_mk_det_adjust_heap(values, h, parent, middle, h[parent]);
        }
    }
    for (int32_t i = middle; i < len; i++) {
        if (tk_mk_det_before(values, h[i], h[0])) {
            tk_mk_det_pop_heap(values, h, middle, i);
        }
    }
    for (int32_t last = middle - 1; last > 0; last--) {
        tk_mk_det_pop_heap(values, h, last, last);
    }
}

static inline void tk_mk_det_row(const float *decoded, int32_t box, float cls, float score, int32_t row,
                          float *out_boxes, float *out_classes, float *out_scores)
{
    for (int32_t c = 0; c < 4; c++) {
        out_boxes[4 * row + c] = decoded[4 * box + c];
    }
    out_classes[row] = cls;
    out_scores[row] = score;
}

/* coeffs[8], coeffs[9]: score and IoU thresholds. scores: n x classes (background first if any). */
static inline int32_t tk_mk_detect_nms(const float *decoded, const float *scores, const float *coeffs, int32_t n,
                                int32_t classes, int32_t num_classes, int32_t max_det, int32_t per_detection,
                                int32_t per_class, int32_t regular, int32_t *iwork, float *fwork,
                                float *out_boxes, float *out_classes, float *out_scores, float *out_num)
{
    const float score_threshold = coeffs[8], iou_threshold = coeffs[9];
    const int32_t offset = classes - num_classes;
    const int32_t ncat = per_detection < num_classes ? per_detection : num_classes;
    int32_t *selected = iwork + 4 * n, *top = iwork + 5 * n, *heap = top + n * ncat;
    int32_t *index = heap + num_classes, *index_tmp = index + 2 * max_det;
    float *kept_scores = fwork, *one = fwork + n, *merged = fwork + 2 * n, *merged_tmp = merged + 2 * max_det;
    int32_t count = 0;
    if (!regular) {
        for (int32_t row = 0; row < n; row++) {
            const float *s = scores + row * classes + offset;
            int32_t *t = top + row * ncat;
            if (ncat == 1) {
                int32_t best = 0;
                for (int32_t c = 1; c < num_classes; c++) {
                    if (s[c] > s[best]) {
                        best = c;
                    }
                }
                t[0] = best;
            } else {
                tk_mk_det_partial_sort(s, num_classes, ncat, heap);
                for (int32_t c = 0; c < ncat; c++) {
                    t[c] = heap[c];
                }
            }
            one[row] = s[t[0]];
        }
        count = tk_mk_det_nms1(decoded, one, n, score_threshold, iou_threshold, max_det, iwork, kept_scores,
                               selected);
        for (int32_t d = 0; d < count; d++) {
            const int32_t box = selected[d];
            const float *s = scores + box * classes + offset;
            for (int32_t c = 0; c < ncat; c++) {
                const int32_t cls = top[box * ncat + c];
                tk_mk_det_row(decoded, box, (float)cls, s[cls], per_detection * d + c, out_boxes, out_classes,
                              out_scores);
            }
        }
    } else {
        for (int32_t col = 0; col < num_classes; col++) {
            for (int32_t row = 0; row < n; row++) {
                one[row] = scores[row * classes + col + offset];
            }
            const int32_t got = tk_mk_det_nms1(decoded, one, n, score_threshold, iou_threshold, per_class, iwork,
                                               kept_scores, selected);
            if (got == 0) {
                continue;
            }
            /* merge [0, count) and the class's `got` boxes, both by decreasing score: ties keep the
             * running list first */
            int32_t l = 0, r = 0, o = 0;
            while (l < count || r < got) {
                int take_right = l == count || (r < got && one[selected[r]] > merged[l]);
                if (take_right) {
                    merged_tmp[o] = one[selected[r]];
                    index_tmp[o++] = selected[r++] * classes + col + offset;
                } else {
                    merged_tmp[o] = merged[l];
                    index_tmp[o++] = index[l++];
                }
            }
            count = count + got < max_det ? count + got : max_det;
            for (int32_t i = 0; i < count; i++) {
                merged[i] = merged_tmp[i];
                index[i] = index_tmp[i];
            }
        }
        for (int32_t d = 0; d < count; d++) {
            const int32_t box = index[d] / classes;
            tk_mk_det_row(decoded, box, (float)(index[d] - box * classes - offset), merged[d], d, out_boxes,
                          out_classes, out_scores);
        }
    }
    out_num[0] = (float)count;
    return 0;
}

#endif /* TK_MK_DETECT_H */
