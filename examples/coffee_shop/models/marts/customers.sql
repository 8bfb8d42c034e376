with customers as (
    select
        customer_id,
        customer_name,
        email,
        signup_date,
        home_store_id,
        loyalty_points
    from {{ ref('stg_customers') }}
),

completed_orders as (
    select
        order_id,
        customer_id,
        order_date,
        order_total
    from {{ ref('orders') }}
    where order_status = 'completed'
),

customer_orders as (
    select
        customer_id,
        min(order_date) as first_order_date,
        max(order_date) as last_order_date,
        count(*) as number_of_orders,
        sum(order_total) as lifetime_value
    from completed_orders
    group by customer_id
)

select
    c.customer_id,
    c.customer_name,
    c.email,
    c.signup_date,
    c.home_store_id,
    c.loyalty_points,
    co.first_order_date,
    co.last_order_date,
    coalesce(co.number_of_orders, 0) as number_of_orders,
    coalesce(co.lifetime_value, 0) as lifetime_value
from customers as c
left join customer_orders as co on c.customer_id = co.customer_id
