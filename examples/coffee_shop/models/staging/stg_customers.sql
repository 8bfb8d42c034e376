-- The raw tables are seeds; source() does not know that, so declare the edge.
-- depends_on: {{ ref('raw_customers') }}

select
    id as customer_id,
    first_name,
    last_name,
    first_name || ' ' || last_name as customer_name,
    lower(email) as email,
    cast(signup_date as date) as signup_date,
    home_store_id,
    try_cast(loyalty_points as integer) as loyalty_points
from {{ source('coffee_shop_raw', 'raw_customers') }}
