"""Tuning language models into recommenders: instruction data (:mod:`.instructions`), LoRA and
soft-prompt tuning with PEFT (:mod:`.tuner`), (tuned adapters load as language models
through :mod:`genrec.text.tuned_lm`). Nothing heavy is imported until used."""

from genrec.tuning.instructions import BUILDERS, Instruction, build_examples

__all__ = [
    "BUILDERS",
    "Instruction",
    "TuneConfig",
    "TuneResult",
    "TunedLM",
    "build_examples",
    "tune",
]


def __getattr__(name):  # torch / transformers / peft only when a tuner or tuned model is used
    if name in ("TuneConfig", "TuneResult", "tune"):
        from genrec.tuning import tuner

        return getattr(tuner, name)
    if name == "TunedLM":
        from genrec.text.tuned_lm import TunedLM

        return TunedLM
    raise AttributeError(f"module 'genrec.tuning' has no attribute {name!r}")
