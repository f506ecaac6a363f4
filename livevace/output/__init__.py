"""The node's output path, between the generator and the pacer: motion interpolation to the
venue's frame rate (`interpolate`, RIFE's IFNet) and upscaling to its size (`upscale`,
spandrel networks or Lanczos), on the GPU beside generation (`stage`)."""
