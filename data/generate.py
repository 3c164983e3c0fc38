"""Regenerate the demo data sets in this folder, byte for byte.

    python data/generate.py

credit.csv / credit-2026q3.csv: a synthetic credit-risk set. `sex` is the
sensitive attribute; historic labels carry a bias against group F through
the `region` proxy and a direct term, so fairness checks have something to
find. The 2026q3 snapshot drifts (incomes up, debt ratios up).
diabetes.csv and wine.csv: scikit-learn's bundled real data sets, exported.
windows/credit-week-01..08.csv: production-like weekly windows of the credit
set (1,000 applications each, with a `timestamp` column and the `default`
label that arrives later): incomes and debt ratios drift a little more each
week, and from week 2 on the relation between inputs and default moves too
(concept drift), so a model trained on credit.csv loses accuracy.
credit-recent.csv: 3,000 recent labelled applications with the latest
relation, to retrain on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
CONCEPT_PER_WEEK = 0.1  # windows: the label's relation to the inputs moves each week


def credit(
    rows: int,
    seed: int,
    income_shift: float = 0.0,
    debt_shift: float = 0.0,
    concept_shift: float = 0.0,
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], size=rows, p=[0.45, 0.55])
    region = np.where(
        sex == "F",
        rng.choice(["north", "south", "east", "west"], size=rows, p=[0.2, 0.4, 0.2, 0.2]),
        rng.choice(["north", "south", "east", "west"], size=rows, p=[0.3, 0.2, 0.25, 0.25]),
    )
    age = rng.integers(19, 75, size=rows)
    income = np.round(rng.lognormal(10.6 + income_shift, 0.45, size=rows), 2)
    debt_ratio = np.round(np.clip(rng.beta(2, 5, size=rows) + debt_shift, 0, 1), 4)
    history = rng.integers(0, 360, size=rows)
    accounts = rng.poisson(4, size=rows)
    amount = np.round(rng.uniform(1_000, 50_000, size=rows), 2)
    employment = rng.choice(
        ["salaried", "self-employed", "contract", "unemployed"], size=rows, p=[0.6, 0.2, 0.15, 0.05]
    )
    logit = (
        -1.2
        + 3.0 * debt_ratio
        - 0.9 * (np.log(income) - 10.6)
        - 0.004 * history
        + 0.00002 * amount
        + 0.8 * (employment == "unemployed")
        + 0.35 * (region == "south")
        + 0.3 * (sex == "F")  # the historic bias the fairness checks should surface
        - 0.01 * (age - 40)
    )
    if concept_shift:
        # concept drift: what predicts default moves from debt and income
        # towards loan size and short histories, so a model trained on the
        # old relation loses accuracy while its inputs barely change
        later = (
            -0.4
            + 0.00006 * (amount - 25_000)
            + 1.2 * (history < 60)
            + 0.9 * (employment == "contract")
            - 0.5 * debt_ratio
        )
        logit = (1 - concept_shift) * logit + concept_shift * later
    default = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "age": age,
            "income": income,
            "debt_ratio": debt_ratio,
            "credit_history_months": history,
            "open_accounts": accounts,
            "loan_amount": amount,
            "employment": employment,
            "region": region,
            "sex": sex,
            "default": default,
        }
    )


def main() -> None:
    from sklearn.datasets import load_diabetes, load_wine

    credit(4000, seed=7).to_csv(HERE / "credit.csv", index=False)
    credit(2000, seed=8, income_shift=0.15, debt_shift=0.05).to_csv(
        HERE / "credit-2026q3.csv", index=False
    )
    windows = HERE / "windows"
    windows.mkdir(exist_ok=True)
    start = np.datetime64("2026-09-07T00:00:00")
    for week in range(8):
        frame = credit(
            1000,
            seed=100 + week,
            income_shift=0.03 * week,
            debt_shift=0.01 * week,
            concept_shift=CONCEPT_PER_WEEK * week,
        )
        rng = np.random.default_rng(200 + week)
        seconds = np.sort(rng.integers(0, 7 * 24 * 3600, size=len(frame)))
        stamps = start + np.timedelta64(7 * week, "D") + seconds.astype("timedelta64[s]")
        frame.insert(0, "timestamp", np.datetime_as_string(stamps, unit="s"))
        frame.to_csv(windows / f"credit-week-{week + 1:02d}.csv", index=False)
    # the recent applications, labelled: what a retrained model learns from
    credit(
        3000, seed=9, income_shift=0.21, debt_shift=0.07, concept_shift=CONCEPT_PER_WEEK * 8
    ).to_csv(HERE / "credit-recent.csv", index=False)
    d = load_diabetes(as_frame=True)
    d.frame.round(6).to_csv(HERE / "diabetes.csv", index=False)
    w = load_wine(as_frame=True)
    w.frame.to_csv(HERE / "wine.csv", index=False)


if __name__ == "__main__":
    main()
