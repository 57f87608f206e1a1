"""Resources: object stores (sources and lake), the lake's table contract, their Dagster faces."""
