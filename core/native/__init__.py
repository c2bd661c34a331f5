"""The C kernels (the only cffi user), the threads large products run on, and malloc's tuning."""
