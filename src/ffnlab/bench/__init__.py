"""scripts/benchmark.py's parts: contenders (ffnlab's step, HF Llama's, the kernel floor), interleaved timing, and
where a train.py run's time goes."""
