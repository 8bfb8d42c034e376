select
    order_date,
    dayname(order_date) as day_of_week,
    strftime(order_date, '%Y-%m') as order_month,
    count(distinct order_id) as order_count,
    sum(item_count) as items_sold,
    sum(order_total) as revenue,
    round(sum(order_total) / count(distinct order_id), 2) as average_order_value
from {{ ref('orders') }}
where order_status = 'completed'
group by order_date
