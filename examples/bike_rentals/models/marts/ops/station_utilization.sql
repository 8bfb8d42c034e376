with stations as (
    select
        station_id,
        station_name,
        city,
        dock_count
    from {{ ref('stg_stations') }}
),

starts as (
    select
        start_station_id as station_id,
        count(*) as rentals_started
    from {{ ref('fct_rentals') }}
    group by start_station_id
),

ends as (
    select
        end_station_id as station_id,
        count(*) as rentals_ended
    from {{ ref('fct_rentals') }}
    where end_station_id is not null
    group by end_station_id
)

select
    s.station_id,
    s.station_name,
    s.city,
    s.dock_count,
    coalesce(st.rentals_started, 0) as rentals_started,
    coalesce(en.rentals_ended, 0) as rentals_ended,
    coalesce(en.rentals_ended, 0) - coalesce(st.rentals_started, 0) as net_bike_flow,
    -- the festival pop-up has no docks: bikes are left in a fenced corral
    100 * coalesce(st.rentals_started, 0) // nullif(s.dock_count, 0) as starts_per_100_docks
from stations as s
left join starts as st on s.station_id = st.station_id
left join ends as en on s.station_id = en.station_id
