"""emopy's TFDS dataset builders, and the face preprocessing and labels every part of emopy shares."""
