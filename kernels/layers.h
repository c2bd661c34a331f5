/* Glassbox layer kernels for training (llm.c style): GELU, LayerNorm, softmax + cross-entropy
 * and the embedding gradient, forward and backward, float32, single-threaded and deterministic
 * (every sum in a fixed order, no FMA contraction: -std=c11 turns it off), so the same inputs
 * give the same bytes on every CPU. Outputs first, sizes last. core/layer_kernels.py wraps them;
 * the NumPy functions in core/model.py, core/activations.py and core/backward.py are the
 * reference they are tested against (tests/test_layer_kernels.py).
 */
#ifndef GLASSBOX_LAYERS_H
#define GLASSBOX_LAYERS_H

#include <stdint.h>

/* out[i] = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) over n values (GPT-2's "gelu_new"). */
void gb_gelu_forward_f32(float *out, const float *x, int64_t n);
/* d_x[i] = d_out[i] * gelu'(x[i]). */
void gb_gelu_backward_f32(float *d_x, const float *d_out, const float *x, int64_t n);

/* LayerNorm over rows of width c: out = (x - mean) / scale * weight + bias,
 * scale[row] = sqrt(var + eps) (population variance). */
void gb_layernorm_forward_f32(float *out, float *scale, const float *x, const float *weight,
                              const float *bias, float eps, int64_t rows, int64_t c);
/* The gradients of that LayerNorm given d_out [rows, c]: d_x [rows, c]; d_weight and d_bias [c]
 * (overwritten: sums over the rows). The mean and scale are recomputed from x. */
void gb_layernorm_backward_f32(float *d_x, float *d_weight, float *d_bias, const float *d_out,
                               const float *x, const float *weight, float eps, int64_t rows, int64_t c);

/* Mean cross-entropy of logits [rows, v] against targets [rows] into *loss, and
 * d_logits = (softmax(logits) - onehot(targets)) / rows. Returns 0, or -1 (nothing written)
 * when a target is outside 0..v-1. */
int gb_softmax_cross_entropy_f32(double *loss, float *d_logits, const float *logits,
                                 const int64_t *targets, int64_t rows, int64_t v);

/* d_table [table_rows, c] = sum of the rows of d_out [n, c] looked up by ids [n] (zeroed first,
 * rows added in order). Returns 0, or -1 (nothing written) when an id is outside 0..table_rows-1. */
int gb_embedding_backward_f32(float *d_table, const float *d_out, const int64_t *ids,
                              int64_t n, int64_t c, int64_t table_rows);

#endif
