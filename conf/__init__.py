"""The packaged config tree (Hydra finds it as pkg://alimb.conf)."""
