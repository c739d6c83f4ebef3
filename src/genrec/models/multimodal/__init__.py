"""Multimodal recommenders: item images (and text) beside interactions.

* :class:`~genrec.models.multimodal.vbpr.VBPR` — BPR-MF with a visual factor (He and McAuley).
* :class:`~genrec.models.multimodal.mmdense.MultimodalDense` — dense retrieval over image and
  text embeddings aligned LiT-style on the catalog; queries from a history, text, an image, or
  a composed reference image + modifying text.
* :class:`~genrec.models.multimodal.mmvae.MultimodalVAE` — Mult-VAE whose item embeddings add
  projected image and text content to the ID part (cold items scored by content).
* :class:`~genrec.models.multimodal.mmdiffrec.MultimodalDiffRec` — DiffRec with a denoiser
  conditioned on the user's content profile and items scored through content-aware embeddings.
* :mod:`~genrec.models.multimodal.matching` — an ALBEF-style image-text matching head trained
  with hard negatives, reranking the top of mmdense's image<->text retrieval.
* :mod:`~genrec.models.multimodal.combiner` — a CLIP4Cir-style learned combiner of composed
  queries, trained on (reference, text, target) triples from catalog attributes.
"""
