"""emopy's TFDS dataset builders, and the face preprocessing and labels every part of emopy shares.

Importing this package registers the builders, so `tfds.load("fer2013")`, `tfds.load("ck_plus")` and
`tfds.load("wesad/chest")` work.
"""

from emopy_tfds.ck_plus import ck_plus_dataset_builder  # noqa: F401  (registers "ck_plus")
from emopy_tfds.fer2013 import fer2013_dataset_builder  # noqa: F401  (registers "fer2013")
from emopy_tfds.wesad import wesad_dataset_builder  # noqa: F401  (registers "wesad")
