/* What TVM-generated tinykiln kernels need instead of the TVM runtime headers.
 *
 * Each kernel file (build/.../kernels/tk_<family>_<hash>.c) includes only this header. Kernels are
 * plain C functions with pointer parameters, no allocation and no runtime calls; the AOT model.c
 * declares their prototypes itself. */
#ifndef TK_KERNEL_H
#define TK_KERNEL_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

/* the micro-kernels some schedules call on an inner tile (runtime/kernels/, on the include path
 * wherever kernels are compiled; an export carries it in include/) */
#include "tk_mk.h"
#include "tk_mk_conv.h"
#include "tk_mk_dw.h"
#include "tk_mk_fc.h"
#include "tk_mk_pool.h"
/* the NMS of TFLite_Detection_PostProcess (ops/detection.py) */
#include "tk_mk_detect.h"
/* the requantization helpers of int8 output stages (tk_rq_mulhi, tk_rq_sat8) */
#include "tk_rq.h"

#endif /* TK_KERNEL_H */
