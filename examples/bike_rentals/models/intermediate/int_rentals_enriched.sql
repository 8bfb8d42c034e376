-- Ephemeral: inlined as a CTE into every model that refs it.
with rentals as (
    select
        rental_id,
        bike_id,
        member_id,
        start_station_id,
        end_station_id,
        started_at,
        ended_at,
        rental_status
    from {{ ref('stg_rentals') }}
),

bikes as (
    select
        bike_id,
        bike_type
    from {{ ref('stg_bikes') }}
),

stations as (
    select
        station_id,
        station_name,
        city
    from {{ ref('stg_stations') }}
)

select
    r.rental_id,
    r.bike_id,
    b.bike_type,
    r.member_id,
    r.start_station_id,
    ss.station_name as start_station_name,
    ss.city as start_city,
    r.end_station_id,
    es.station_name as end_station_name,
    r.started_at,
    r.ended_at,
    cast(r.started_at as date) as rental_date,
    {{ duration_minutes('r.started_at', 'r.ended_at') }} as duration_minutes,
    r.start_station_id = r.end_station_id as is_round_trip,
    r.rental_status
from rentals as r
inner join bikes as b on r.bike_id = b.bike_id
inner join stations as ss on r.start_station_id = ss.station_id
left join stations as es on r.end_station_id = es.station_id
