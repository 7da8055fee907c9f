"""facecast.transfer."""
