{{
    config(
        materialized='incremental',
        unique_key='rental_id',
        on_schema_change='fail'
    )
}}

with rentals as (
    select
        rental_id,
        bike_id,
        bike_type,
        member_id,
        start_station_id,
        start_station_name,
        end_station_id,
        end_station_name,
        started_at,
        ended_at,
        rental_date,
        duration_minutes,
        is_round_trip,
        rental_status
    from {{ ref('int_rentals_enriched') }}
    {% if is_incremental() %}
    -- only rentals newer than the newest one already loaded
    where started_at > (select max(started_at) from {{ this }})
    {% endif %}
),

payments as (
    select
        rental_id,
        payment_count,
        paid_pence,
        paid_amount,
        used_voucher
    from {{ ref('int_rental_payments') }}
)

select
    r.rental_id,
    r.bike_id,
    r.bike_type,
    r.member_id,
    r.start_station_id,
    r.start_station_name,
    r.end_station_id,
    r.end_station_name,
    r.started_at,
    r.ended_at,
    r.rental_date,
    r.duration_minutes,
    r.is_round_trip,
    r.rental_status,
    coalesce(p.payment_count, 0) as payment_count,
    coalesce(p.paid_pence, 0) as paid_pence,
    coalesce(p.paid_amount, 0) as paid_amount,
    coalesce(p.used_voucher, false) as used_voucher
from rentals as r
left join payments as p on r.rental_id = p.rental_id
