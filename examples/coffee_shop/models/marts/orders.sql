{%- set categories = ['coffee', 'tea', 'pastry'] -%}

with orders as (
    select
        order_id,
        customer_id,
        store_id,
        ordered_at,
        order_date,
        order_status
    from {{ ref('stg_orders') }}
),

order_items as (
    select
        order_item_id,
        order_id,
        product_sku,
        quantity
    from {{ ref('stg_order_items') }}
),

products as (
    select
        product_sku,
        product_category,
        unit_price_cents
    from {{ ref('stg_products') }}
),

item_amounts as (
    select
        oi.order_id,
        p.product_category,
        oi.quantity,
        oi.quantity * p.unit_price_cents as amount_cents
    from order_items as oi
    inner join products as p on oi.product_sku = p.product_sku
),

order_totals as (
    select
        order_id,
        sum(quantity) as item_count,
        {%- for category in categories %}
        sum(case when product_category = '{{ category }}' then amount_cents else 0 end) as {{ category }}_amount_cents,
        {%- endfor %}
        sum(amount_cents) as order_total_cents
    from item_amounts
    group by order_id
)

select
    o.order_id,
    o.customer_id,
    o.store_id,
    o.ordered_at,
    o.order_date,
    o.order_status,
    coalesce(t.item_count, 0) as item_count,
    {%- for category in categories %}
    {{ cents_to_dollars('coalesce(t.' ~ category ~ '_amount_cents, 0)') }} as {{ category }}_amount,
    {%- endfor %}
    coalesce(t.order_total_cents, 0) as order_total_cents,
    {{ cents_to_dollars('coalesce(t.order_total_cents, 0)') }} as order_total
from orders as o
left join order_totals as t on o.order_id = t.order_id
