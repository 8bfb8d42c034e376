select
    id as order_id,
    customer_id,
    store_id,
    cast(ordered_at as timestamp) as ordered_at,
    cast(ordered_at as date) as order_date,
    status as order_status
from {{ ref('raw_orders') }}
