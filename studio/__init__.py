"""`emopy studio`: a web app to try models on photos and the webcam, train and tune runs, and compare them."""

import os

# No calls home from Gradio: set before any module of the studio imports it.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
