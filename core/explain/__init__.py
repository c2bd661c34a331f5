"""What the pages teach, beyond the forward pass: head maths, the residual stream, questions, exercises, experiments."""
