"""Robustness attacks as evaluations: does what the model was asked to forget come back?

- ``relearn``: a few fine-tuning steps on part of the forget set, metrics on the held-out rest
  (:mod:`unlearn.attacks.relearn`);
- ``quantize``: weights rounded to 4 (or 8) bits (:mod:`unlearn.attacks.quantize`);
- ``paraphrase``: the forget questions asked in other words (:mod:`unlearn.attacks.paraphrase`).

Each is applied alike to the model under test and to the retain model, and reported before and
after (:mod:`unlearn.attacks.report`); ``python -m unlearn attack`` is :func:`unlearn.attacks.job.attack`.
This package file imports nothing, so ``compare`` can read reports without loading torch.
"""
