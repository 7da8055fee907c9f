"""facecast.weights."""
