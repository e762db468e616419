"""Token prices: each usage record the gateway wrote is priced once, at its model's
price per 1k input and output tokens, and added to the hour it belongs to.

The price goes on the record itself (input_cost_eur / output_cost_eur, NULL until
priced), in the same statement that adds it to `usage_hour`: a record is counted in
its hour exactly when it gets its price, so nothing is counted twice and a finops
outage only delays pricing. Records are taken oldest first, a batch at a time,
skipping rows another replica holds.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

BATCH = 5000
_KEY = "organization_id, instance_id, model_id, api_key_id, user_id"

PRICE_BATCH = text(
    f"""
WITH pending AS (
    SELECT id, occurred_at, model_id FROM finops.inference_usage
    WHERE input_cost_eur IS NULL
    ORDER BY occurred_at
    LIMIT :batch
    FOR UPDATE SKIP LOCKED
),
prices AS (
    SELECT p.id, p.occurred_at,
           COALESCE(m.price_per_1k_input_tokens_eur, 0) AS input_price,
           COALESCE(m.price_per_1k_output_tokens_eur, 0) AS output_price
    FROM pending p
    LEFT JOIN models m ON m.id = p.model_id  -- a deleted model prices at 0
),
priced AS (
    UPDATE finops.inference_usage u
    SET input_cost_eur = round(u.prompt_tokens * p.input_price / 1000, 10),
        output_cost_eur = round(u.completion_tokens * p.output_price / 1000, 10)
    FROM prices p
    WHERE u.id = p.id AND u.occurred_at = p.occurred_at
    RETURNING u.occurred_at, u.{_KEY.replace(", ", ", u.")}, u.model_name, u.status,
              u.prompt_tokens, u.completion_tokens, u.input_cost_eur, u.output_cost_eur
),
hours AS (
    INSERT INTO finops.usage_hour
        (bucket_hour, {_KEY}, model_name, requests, failed_requests,
         prompt_tokens, completion_tokens, input_cost_eur, output_cost_eur)
    SELECT date_trunc('hour', occurred_at, 'UTC'), {_KEY}, max(model_name), count(*),
           count(*) FILTER (WHERE status <> 'success'),
           sum(prompt_tokens), sum(completion_tokens), sum(input_cost_eur),
           sum(output_cost_eur)
    FROM priced
    GROUP BY date_trunc('hour', occurred_at, 'UTC'), {_KEY}
    ON CONFLICT (bucket_hour, {_KEY}) DO UPDATE
        SET requests = finops.usage_hour.requests + excluded.requests,
            failed_requests = finops.usage_hour.failed_requests + excluded.failed_requests,
            prompt_tokens = finops.usage_hour.prompt_tokens + excluded.prompt_tokens,
            completion_tokens = finops.usage_hour.completion_tokens + excluded.completion_tokens,
            input_cost_eur = finops.usage_hour.input_cost_eur + excluded.input_cost_eur,
            output_cost_eur = finops.usage_hour.output_cost_eur + excluded.output_cost_eur
    RETURNING 1
)
SELECT count(*) FROM priced
"""  # noqa: S608 (constants only)
)


async def price_usage(session: AsyncSession, batch: int = BATCH) -> int:
    """Price one batch of unpriced usage records; returns how many. Does not commit."""
    return int(await session.scalar(PRICE_BATCH, {"batch": batch}) or 0)
