DROP TABLE one_time_prekeys;
DROP TABLE device_keys;
