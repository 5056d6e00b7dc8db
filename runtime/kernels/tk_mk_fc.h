/* tinykiln micro-kernels for FULLY_CONNECTED (see tk_mk.h for the shared helpers). */
#ifndef TK_MK_FC_H
#define TK_MK_FC_H

#include "tk_mk.h"

#endif /* TK_MK_FC_H */
