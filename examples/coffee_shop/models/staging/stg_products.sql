select
    sku as product_sku,
    name as product_name,
    category as product_category,
    price_cents as unit_price_cents,
    {{ cents_to_dollars('price_cents') }} as unit_price
from {{ ref('raw_products') }}
