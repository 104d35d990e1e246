-- 01 Storage integration: lets Snowflake read the delivery bucket by assuming an IAM
-- role, so no AWS keys appear in SQL. Run once per account as ACCOUNTADMIN, then
-- `DESC INTEGRATION {{storage_integration}};` and put its STORAGE_AWS_IAM_USER_ARN and
-- STORAGE_AWS_EXTERNAL_ID into the role's trust policy (warehouse/README.md, step 1).
CREATE STORAGE INTEGRATION IF NOT EXISTS {{storage_integration}}
  TYPE = EXTERNAL_STAGE
  STORAGE_PROVIDER = 'S3'
  ENABLED = TRUE
  STORAGE_AWS_ROLE_ARN = '{{aws_role_arn}}'
  STORAGE_ALLOWED_LOCATIONS = ('s3://{{bucket}}/{{prefix}}')
  COMMENT = 'Read access to the Firehose delivery bucket of the player event tracker';
