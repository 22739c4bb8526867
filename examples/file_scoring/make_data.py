"""Generate the demo data: 240 customer reviews (text files) and a small sentiment model.

The model is a bag-of-words logistic regression stored as JSON in data/model/, the shape of a
real model folder loaded once per worker process in init().
"""

import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
POSITIVE = ["great", "excellent", "love", "fast", "reliable", "perfect", "happy", "recommend"]
NEGATIVE = ["broken", "slow", "refund", "terrible", "late", "disappointed", "noisy", "worst"]
NEUTRAL = ["the", "product", "arrived", "box", "it", "was", "and", "service", "price", "color"]


def main(n_reviews: int = 240, seed: int = 7) -> None:
    rng = random.Random(seed)
    reviews = os.path.join(HERE, "data", "reviews")
    model = os.path.join(HERE, "data", "model")
    os.makedirs(reviews, exist_ok=True)
    os.makedirs(model, exist_ok=True)
    weights = {w: 1.5 for w in POSITIVE} | {w: -1.5 for w in NEGATIVE}
    with open(os.path.join(model, "weights.json"), "w") as f:
        json.dump({"bias": 0.1, "weights": weights, "threshold": 0.5}, f, indent=1)
    for i in range(n_reviews):
        tone = POSITIVE if rng.random() < 0.6 else NEGATIVE
        words = rng.choices(NEUTRAL, k=rng.randint(6, 14)) + rng.choices(tone, k=rng.randint(1, 4))
        rng.shuffle(words)
        # Spread reviews over per-day folders, as exported data usually is.
        day = os.path.join(reviews, f"2026-11-{1 + i % 6:02d}")
        os.makedirs(day, exist_ok=True)
        with open(os.path.join(day, f"review_{i:05d}.txt"), "w") as f:
            f.write(" ".join(words) + "\n")
    print(f"wrote {n_reviews} reviews to {reviews} and a model to {model}")


if __name__ == "__main__":
    main()
