with stores as (
    select
        store_id,
        store_name,
        city,
        seat_count
    from {{ ref('stg_stores') }}
),

completed_orders as (
    select
        order_id,
        store_id,
        order_total_cents
    from {{ ref('orders') }}
    where order_status = 'completed'
)

select
    s.store_id,
    s.store_name,
    s.city,
    s.seat_count,
    count(o.order_id) as order_count,
    coalesce(sum(o.order_total_cents), 0) as revenue_cents,
    {{ cents_to_dollars('coalesce(sum(o.order_total_cents), 0)') }} as revenue,
    -- the station kiosk has no seats
    coalesce(sum(o.order_total_cents), 0) // nullif(s.seat_count, 0) as revenue_cents_per_seat
from stores as s
left join completed_orders as o on s.store_id = o.store_id
group by s.store_id, s.store_name, s.city, s.seat_count
