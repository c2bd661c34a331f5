/* Forward attention kernel: masked scaled dot-product attention, stable softmax
 * (subtract the row max before exp), float32 and float64 from one body. */
#include <math.h>
#include <stdlib.h>

#include "attention.h"

#define REAL float
#define EXP expf
#define FN(name) name##_f32
#include "attention_forward_impl.h"
#undef REAL
#undef FN
#undef EXP

#define REAL double
#define EXP exp
#define FN(name) name##_f64
#include "attention_forward_impl.h"
#undef REAL
#undef FN
#undef EXP
