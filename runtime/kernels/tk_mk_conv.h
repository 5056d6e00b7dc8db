/* tinykiln micro-kernels for CONV_2D (see tk_mk.h for the shared helpers). */
#ifndef TK_MK_CONV_H
#define TK_MK_CONV_H

#include "tk_mk.h"

#endif /* TK_MK_CONV_H */
