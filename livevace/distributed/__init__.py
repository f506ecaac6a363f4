"""One node on several GPUs of one host, through torch.distributed (docs/scaling.md).

Rank 0 is the node (sources, sinks, control, OSC, pacer, the pipeline); the other ranks only
run model work. `launch.Ranks` starts and stops them, `facade.RankedStreams` opens streams
whose calls every rank makes, `splits` spreads each forward of the DiT over them.
"""
