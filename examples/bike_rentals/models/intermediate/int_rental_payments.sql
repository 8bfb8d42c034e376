{{ config(materialized='view') }}

-- One row per paid rental: a rental can be paid in parts (a voucher, then a card).
select
    rental_id,
    count(*) as payment_count,
    sum(amount_pence) as paid_pence,
    {{ pence_to_pounds('sum(amount_pence)') }} as paid_amount,
    max(paid_at) as last_paid_at,
    bool_or(payment_method = 'voucher') as used_voucher
from {{ ref('stg_payments') }}
group by rental_id
