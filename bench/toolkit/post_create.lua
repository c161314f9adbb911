-- wrk script: POST one 271-byte record ({"record": {"data": {...}}}) to /v1/types/contact/records.
-- The API key comes from the RB_KEY environment variable (run_create.sh makes one per run).
wrk.method = "POST"
wrk.path = "/v1/types/contact/records"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("RB_KEY")
wrk.body = [[{"record":{"data":{"name":"Ada Lovelace","email":"ada@example.com","age":36,"tags":["math","poetry"],"address":{"city":"London","zip":"W1"},"active":true,"score":98.5,"notes":"first programmer, wrote about the analytical engine","bio":"Countess of Lovelace, born 1815"}}}]]
