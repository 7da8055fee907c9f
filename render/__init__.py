"""facecast.render."""
