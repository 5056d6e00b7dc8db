"""TFLite_Detection_PostProcess, the custom op SSD detectors end with: box decoding against constant
anchors, then non-maximum suppression (fast or regular), as LiteRT's detection_postprocess.cc.

Inputs: box encodings (1, N, >= 4) and class predictions (1, N, C + background), float32 or uint8
(the importer shifts uint8 to int8, the same real values), and the anchors (N, 4), a constant
(quantized like the boxes when they are). int8 in the file is refused: LiteRT's kernel (and TFLite
Micro's) read uint8 and float32 only, so nothing could validate it; a DEQUANTIZE before the op is
the way out (TF2 int8 SSD exports end that way). Outputs, all float32: boxes (1, K, 4) as
(ymin, xmin, ymax, xmax), classes (1, K), scores (1, K), num_detections (1,), K = max_detections *
max_classes_per_detection. The attributes are a FlexBuffer map in custom_options
(tflite/flexbuffer.py); a missing key reads as 0 (detections_per_class: 100), as in LiteRT.

LiteRT's arithmetic, which the kernel repeats:
  - quantized encodings and anchors: (float(q) - zero_point) * scale in float32; class predictions
    round(scale * (q - zero_point)) to float32 (the same value: both are one correctly rounded product);
  - decoding in double: ycenter = y / y_scale * anchor_h + anchor_y, half_h = 0.5 * exp(h / h_scale)
    * anchor_h, each rounded to float32, then ymin = ycenter - half_h, ymax = ycenter + half_h in float32
    (x and w alike);
  - single-class NMS: scores >= nms_score_threshold kept, stably sorted by decreasing score (ties: lower
    anchor first), a box suppressed when its IoU with a kept one is > nms_iou_threshold; IoU is 0 if
    either area is <= 0;
  - fast NMS (use_regular_nms false): per anchor the top min(max_classes_per_detection, num_classes)
    classes (one class: the first maximum; more: std::partial_sort's order, libstdc++'s heap select),
    NMS on each anchor's best score, then max_classes_per_detection rows per detection;
  - regular NMS: NMS per class (min(detections_per_class, max_detections) each), merged stably by
    decreasing score (ties: the earlier class), max_detections rows, unused rows zero.
Rows LiteRT leaves unwritten (fast NMS past the detections; regular NMS past max_detections) are
zero here: `unwritten_rows` says which, so validation compares only the rows LiteRT defines.

Kernel: decoding and dequantization are TVM TE (a float64 compute per box coordinate into an arena
scratch; the coefficients come from a constant array, so TVM neither folds nor reprints them), the
outputs are zeroed by TE, and the NMS is one call of tk_mk_detect_nms (runtime/kernels/tk_mk_detect.h).
The NMS is sequential and data-dependent: a sort whose length is only known at run time, a candidate
list shrinking as boxes are suppressed, a merge of per-class lists; TE has no sort or data-dependent
loop bound, and a TIR loop nest of it would be C written through TVM's builder, harder to read than C.
"""
from __future__ import annotations

import math

import numpy as np

from tinykiln.kernel import KernelCall

from .base import KernelFamily, constant, param, quant_params, unsupported
from .checks import OpView

KIND = "TFLite_Detection_PostProcess"
DTYPES = (("int8", "float32"), ("float32", "float32"))
INT32_MAX = (1 << 31) - 1
NMS = "tk_mk_detect_nms"


# -- importer check -------------------------------------------------------------------------------

def _int(v: OpView, name: str, default: int, low: int) -> int:
    value = v.options.get(name)
    if value is None:
        value = default
    if isinstance(value, float) or not low <= int(value) <= INT32_MAX:
        v.fail(f"{name} is {value!r}, expected an integer >= {low}")
        return max(low, 1)
    return int(value)


def _float(v: OpView, name: str) -> float:
    value = v.options.get(name)
    value = float(np.float32(0.0 if value is None else value))  # LiteRT reads AsFloat (float32)
    if not math.isfinite(value):
        v.fail(f"{name} is {value}, expected a finite number")
    return value


def check(v: OpView) -> dict:
    """Three inputs (box encodings, class predictions, constant anchors), four float32 outputs; the
    FlexBuffer attributes within the ranges LiteRT's kernel accepts."""
    if v.options_type == "CORRUPT":
        v.fail(f"custom_options are not a readable FlexBuffer map ({v.options.get('error')})")
        return {}
    attrs = {
        "max_detections": _int(v, "max_detections", 0, 1),
        "max_classes_per_detection": _int(v, "max_classes_per_detection", 0, 1),
        "detections_per_class": _int(v, "detections_per_class", 100, 1),
        "num_classes": _int(v, "num_classes", 0, 1),
        "regular": bool(v.options.get("use_regular_nms") or False),
        "score_threshold": _float(v, "nms_score_threshold"),
        "iou_threshold": _float(v, "nms_iou_threshold"),
        "scales": [_float(v, k) for k in ("y_scale", "x_scale", "h_scale", "w_scale")],
    }
    if not 0 < attrs["iou_threshold"] <= 1:
        v.fail(f"nms_iou_threshold is {attrs['iou_threshold']}, expected in (0, 1]")
    if any(s == 0 for s in attrs["scales"]):
        v.fail(f"the box scales (y, x, h, w) are {attrs['scales']}: a scale of 0 divides by zero")
    if not v.need((3, 3), 4):
        return attrs
    boxes, scores, anchors = v.inputs
    if not (v.rank(boxes, 3, "box encodings") and v.rank(scores, 3, "class predictions")
            and v.rank(anchors, 2, "anchors")):
        return attrs
    _, n, length = boxes.shape
    if boxes.shape[0] != 1 or length < 4:
        v.fail(f"box encodings '{boxes.name}' have shape {list(boxes.shape)}, expected [1, boxes, >= 4]")
    if scores.shape[:2] != (1, n):
        v.fail(f"class predictions '{scores.name}' have shape {list(scores.shape)}, expected [1, {n}, classes]")
    background = scores.shape[2] - attrs["num_classes"]
    if background not in (0, 1):
        v.fail(f"class predictions have {scores.shape[2]} classes for num_classes {attrs['num_classes']} "
               "(expected num_classes, or one more for the background)")
    for t, role in ((boxes, "box encodings"), (scores, "class predictions"), (anchors, "anchors")):
        if t.dtype == "int8" and not t.from_uint8:
            # LiteRT's kernel (and TFLite Micro's) read uint8 or float32 only: no reference runs int8
            v.fail(f"{role} '{t.name}' are int8: LiteRT's kernel takes uint8 or float32; dequantize them "
                   "before the op (a DEQUANTIZE op, as TF2 int8 SSD exports do)")
        elif t.dtype not in ("int8", "float32"):
            v.fail(f"{role} '{t.name}' are {t.dtype} (uint8 or float32)")
    if anchors.shape != (n, 4):
        v.fail(f"anchors '{anchors.name}' have shape {list(anchors.shape)}, expected [{n}, 4]")
    elif not anchors.is_constant:
        v.fail(f"anchors '{anchors.name}' must be a constant tensor")
    elif (anchors.dtype == "float32") != (boxes.dtype == "float32"):
        v.fail(f"anchors '{anchors.name}' are {anchors.dtype} and box encodings {boxes.dtype}: LiteRT "
               "dequantizes the anchors with the boxes (both quantized, or both float32)")
    elif anchors.dtype == "int8" and anchors.quant is None:
        v.fail(f"anchors '{anchors.name}' are int8 without quantization parameters")
    else:
        sizes = dequantized_anchors(anchors)[:, 2:]
        if not np.all(np.isfinite(sizes)) or np.any(sizes < 0):
            v.fail(f"anchors '{anchors.name}' have a negative or non-finite height or width: LiteRT refuses "
                   "the decoded boxes (ymin > ymax)")
    k = attrs["max_detections"] * attrs["max_classes_per_detection"]
    for t, shape, role in zip(v.outputs, ((1, k, 4), (1, k), (1, k), (1,)),
                              ("detection boxes", "detection classes", "detection scores", "num_detections")):
        if t.dtype != "float32":
            v.fail(f"{role} '{t.name}' is {t.dtype}, the op writes float32")
        v.shape_is(t, shape, role)
    return attrs


def dequantized_anchors(anchors) -> np.ndarray:
    """The anchors as LiteRT reads them: float32, or (float(q) - zero_point) * scale in float32."""
    data = np.asarray(anchors.data)
    if anchors.dtype == "float32":
        return data.astype(np.float32).reshape(-1, 4)
    scale, zp = np.float32(anchors.quant.scale[0]), np.float32(anchors.quant.zero_point[0])
    return ((data.astype(np.float32) - zp) * scale).astype(np.float32).reshape(-1, 4)


def unwritten_rows(attrs: dict, num_detections: int) -> np.ndarray:
    """Which of the K output rows LiteRT leaves unwritten (they hold whatever its arena held), given
    the num_detections it reported: a bool per row."""
    per = attrs["max_classes_per_detection"]
    rows = np.zeros(attrs["max_detections"] * per, bool)
    if attrs["regular"]:
        rows[attrs["max_detections"]:] = True
    else:
        written = min(per, attrs["num_classes"])
        rows.reshape(-1, per)[int(num_detections):] = True
        rows.reshape(-1, per)[:, written:] = True
    return rows


# -- lowering ---------------------------------------------------------------------------------------

def lower_detection(ctx, op):
    boxes, scores, anchors = (ctx.tensor(i) for i in op.inputs)
    a = op.attrs
    _, n, length = boxes.shape
    c1 = scores.shape[2]
    per = a["max_classes_per_detection"]
    k = a["max_detections"] * per
    coeffs = np.zeros(10, np.float32)
    coeffs[0:4] = a["scales"]
    for tensor, at, what in ((boxes, 4, "box encodings"), (scores, 6, "class predictions")):
        if tensor.dtype == "int8":
            coeffs[at], coeffs[at + 1] = quant_params(tensor, what, op)
        elif tensor.dtype != "float32":
            raise unsupported(op, f"{what} of type {tensor.dtype}")
    coeffs[8], coeffs[9] = a["score_threshold"], a["iou_threshold"]
    constant(ctx, op.inputs[2], op, "anchors")
    ncat = min(per, a["num_classes"])
    iwork, fwork = work_sizes(n, a["num_classes"], ncat, a["max_detections"])
    attrs = {"boxes": n, "length": length, "classes": c1, "num_classes": a["num_classes"],
             "max_detections": a["max_detections"], "per_detection": per,
             "per_class": min(a["detections_per_class"], a["max_detections"]), "regular": a["regular"]}
    params = [param("boxes", boxes.dtype, (n, length), "input"), param("scores", scores.dtype, (n, c1), "input"),
              param("anchors", "float32", (n, 4), "const"), param("coeffs", "float32", (10,), "const"),
              param("decoded", "float32", (n, 4), "scratch")]
    args = [op.inputs[0], op.inputs[1], dequantized_anchors(anchors), coeffs, None]
    if scores.dtype == "int8":
        params.append(param("fscores", "float32", (n, c1), "scratch"))
        args.append(None)
    params += [param("iwork", "int32", (iwork,), "scratch"), param("fwork", "float32", (fwork,), "scratch"),
               param("det_boxes", "float32", (k, 4), "output"), param("det_classes", "float32", (k,), "output"),
               param("det_scores", "float32", (k,), "output"), param("num_detections", "float32", (1,), "output")]
    args += [None, None, *op.outputs]
    spec = ctx.spec(f"detection_{boxes.dtype}_{scores.dtype}", params, attrs)
    return [KernelCall(spec, op.index, args)]


def work_sizes(n: int, num_classes: int, ncat: int, max_detections: int) -> tuple[int, int]:
    """int32 and float32 words tk_mk_detect_nms needs (its header lays them out the same way)."""
    return 5 * n + n * ncat + num_classes + 4 * max_detections, 2 * n + 4 * max_detections


def _compute(spec):
    from tvm import te, tirx

    a = spec.attrs
    n, length, c1 = a["boxes"], a["length"], a["classes"]
    k = a["max_detections"] * a["per_detection"]
    boxes = te.placeholder((n, length), spec.params[0].dtype, name="boxes")
    scores = te.placeholder((n, c1), spec.params[1].dtype, name="scores")
    anchors = te.placeholder((n, 4), "float32", name="anchors")
    co = te.placeholder((10,), "float32", name="coeffs")

    def encoding(i, j):
        if boxes.dtype == "float32":
            return boxes[i, j]
        return (boxes[i, j].astype("float32") - co[5]) * co[4]

    def corner(i, c):
        axis = tirx.floormod(c, 2)  # y for ymin/ymax, x for xmin/xmax
        wide = lambda e: e.astype("float64")  # noqa: E731
        size = anchors[i, axis + 2]
        center = (wide(encoding(i, axis)) / wide(co[axis]) * wide(size) + wide(anchors[i, axis])).astype("float32")
        half = (tirx.const(0.5, "float64") * tirx.exp(wide(encoding(i, axis + 2)) / wide(co[axis + 2]))
                * wide(size)).astype("float32")
        return tirx.Select(c < 2, center - half, center + half)

    decoded = te.compute((n, 4), corner, name="decoded")
    tensors = [boxes, scores, anchors, co, decoded]
    if scores.dtype == "int8":
        tensors.append(te.compute((n, c1), lambda i, j: (scores[i, j].astype("float32") - co[7]) * co[6],
                                  name="fscores"))
    iwork = te.placeholder(spec.params[len(tensors)].shape, "int32", name="iwork")
    fwork = te.placeholder(spec.params[len(tensors) + 1].shape, "float32", name="fwork")
    zero = tirx.const(0.0, "float32")
    outs = [te.compute((k, 4), lambda i, j: zero, name="det_boxes"),
            te.compute((k,), lambda i: zero, name="det_classes"),
            te.compute((k,), lambda i: zero, name="det_scores"),
            te.compute((1,), lambda i: zero, name="num_detections")]
    return [*tensors, iwork, fwork, *outs]


def _schedule(sch, spec):
    """The TE part as computed, then the NMS call reading its results."""
    from tvm import tirx
    from tvm.s_tir.stmt import SBlock, SBlockRealize

    a = spec.attrs
    func = sch.mod["main"]
    bufs = {p.name: buf for p, buf in zip(spec.params, func.params)}

    def address(name):
        buf = bufs[name]
        return tirx.address_of(tirx.BufferLoad(buf, [0] * len(buf.shape)))

    scores = "fscores" if "fscores" in bufs else "scores"
    call = tirx.call_extern(
        "int32", NMS, address("decoded"), address(scores), address("coeffs"), a["boxes"], a["classes"],
        a["num_classes"], a["max_detections"], a["per_detection"], a["per_class"], int(a["regular"]),
        address("iwork"), address("fwork"), address("det_boxes"), address("det_classes"), address("det_scores"),
        address("num_detections"))
    realize = func.body
    root = realize.block
    body = tirx.SeqStmt([root.body, tirx.Evaluate(call)])
    block = SBlock(root.iter_vars, root.reads, root.writes, root.name_hint, body, None, [], root.match_buffers,
                   root.annotations)
    return tirx.PrimFunc(func.params, SBlockRealize(realize.iter_values, realize.predicate, block),
                         ret_type=func.ret_type, attrs=func.attrs)


FAMILIES = {f"detection_{b}_{s}": KernelFamily(_compute, _schedule)
            for b in ("int8", "float32") for s in ("int8", "float32")}


# -- validation: the rows LiteRT leaves unwritten ---------------------------------------------------

def unwritten_plan(graph) -> list[tuple[list[int], dict]]:
    """For each TFLite_Detection_PostProcess whose four outputs are model outputs: (their positions in
    the model's outputs, the op's attrs)."""
    plan = []
    for op in graph.ops:
        if op.kind == KIND and all(t in graph.outputs for t in op.outputs):
            plan.append(([graph.outputs.index(t) for t in op.outputs], op.attrs))
    return plan


def zero_unwritten(plan, outputs: list[np.ndarray]) -> list[np.ndarray]:
    """LiteRT's outputs with the rows it leaves unwritten set to zero, as the kernel writes them."""
    outputs = list(outputs)
    for positions, attrs in plan:
        boxes, classes, scores, num = positions
        rows = unwritten_rows(attrs, int(np.asarray(outputs[num]).reshape(-1)[0]))
        for at in (boxes, classes, scores):
            value = np.array(outputs[at])
            value.reshape(len(rows), -1)[rows] = 0
            outputs[at] = value
    return outputs
