"""Live video without re-encoding: camera streams remuxed to fragmented MP4 and fanned out to viewers."""
