"""Test harness for the chart: cluster (kind/make), helm release, kube helpers, database client."""
