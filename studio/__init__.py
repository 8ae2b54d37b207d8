"""`emopy studio`: a web app to try models on photos and the webcam, train and tune runs, and compare them."""
