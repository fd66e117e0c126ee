"""Write sample.csv: 400 made-up customers, of whom some churned (same file every run).

Churn is likelier for new customers, high monthly charges, many support calls and short
contracts, with noise, so a linear model can learn it but not perfectly (about 0.9).

    python examples/custom-algorithm/data/make_sample.py
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

ROWS = 400
SEED = 7


def customer(rng: random.Random) -> list[object]:
    tenure = rng.randint(1, 72)
    charges = round(rng.uniform(20, 120), 2)
    calls = min(8, int(rng.expovariate(0.6)))
    contract = rng.choice([1, 12, 24])
    risk = (1.2 - 0.06 * tenure + 0.025 * (charges - 70) + 0.45 * calls
            - 0.05 * contract + rng.gauss(0, 0.6))
    return [tenure, charges, calls, contract, "yes" if risk > 0 else "no"]


def main() -> None:
    rng = random.Random(SEED)
    path = Path(__file__).with_name("sample.csv")
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["tenure_months", "monthly_charges", "support_calls",
                         "contract_months", "label"])
        writer.writerows(customer(rng) for _ in range(ROWS))
    print(f"wrote {ROWS} rows to {path}")


if __name__ == "__main__":
    main()
