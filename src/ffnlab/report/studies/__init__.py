"""What a study asks across runs and groups: compute ladders, paired factors, histories, downstream scores."""
