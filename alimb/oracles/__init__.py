"""Oracles: who answers alimb's label queries (a person through Label Studio, `alimb.oracles.label_studio`)."""
