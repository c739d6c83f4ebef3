"""Multimodal recommenders: item images (and text) beside interactions.

* :class:`~genrec.models.multimodal.vbpr.VBPR` — BPR-MF with a visual factor (He and McAuley).
* :class:`~genrec.models.multimodal.mmdense.MultimodalDense` — dense retrieval over image and
  text embeddings aligned LiT-style on the catalog; queries from a history, text, an image, or
  a composed reference image + modifying text.
"""
