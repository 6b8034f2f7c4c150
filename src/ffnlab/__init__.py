"""ffnlab: which feed-forward variant makes a transformer learn best, at equal parameters?"""
