"""facecast.recon."""
