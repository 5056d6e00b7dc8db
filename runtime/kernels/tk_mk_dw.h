/* tinykiln micro-kernels for DEPTHWISE_CONV_2D (see tk_mk.h for the shared helpers). */
#ifndef TK_MK_DW_H
#define TK_MK_DW_H

#include "tk_mk.h"

#endif /* TK_MK_DW_H */
