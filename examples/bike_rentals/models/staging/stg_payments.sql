select
    id as payment_id,
    rental_id,
    method as payment_method,
    amount_pence,
    {{ pence_to_pounds('amount_pence') }} as amount,
    cast(paid_at as timestamp) as paid_at
from {{ ref('raw_payments') }}
