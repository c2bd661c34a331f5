/* Backward attention kernel (for training): gradients of q, k, v from the
 * gradient of the output and the forward's weights, float32 and float64. */
#include <stdlib.h>

#include "attention.h"

#define REAL float
#define FN(name) name##_f32
#include "attention_backward_impl.h"
#undef REAL
#undef FN

#define REAL double
#define FN(name) name##_f64
#include "attention_backward_impl.h"
#undef REAL
#undef FN
