-- wrk script: POST a 271-byte JSON record to /echo
wrk.method = "POST"
wrk.path = "/echo"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[{"name":"Ada Lovelace","email":"ada@example.com","age":36,"tags":["math","poetry"],"address":{"city":"London","zip":"W1"},"active":true,"score":98.5,"notes":"first programmer, wrote about the analytical engine","bio":"Countess of Lovelace, born 1815 in London, worked w"}]]
