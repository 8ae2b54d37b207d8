"""emopy's TFDS dataset builders, and the face preprocessing and labels every part of emopy shares.

Importing this package registers the builders, so `tfds.load("fer2013")` works.
"""

from emopy_tfds.fer2013 import fer2013_dataset_builder  # noqa: F401  (registers "fer2013")
