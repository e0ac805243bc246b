"""The embedded model ladder ("zoo"): small Llama models trained here, offline and seeded.

`ladder` builds a ladder and lists a ladder folder; `corpus` (English text), `formats` (the task
suite's text formats), `data` (tokenizer and training stream), `train` (one size), `probe` (progress
while training), `eval` (the reference lm-eval evaluation) and `taskdata` (the task YAMLs' loader).
"""
