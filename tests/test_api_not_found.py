"""A path under /api/ that names nothing answers JSON, like every other answer of the API."""


def test_an_unknown_api_path_answers_json_404(client, api_token):
    response = client.get("/api/v3/group/null,null", headers={"Authorization": f"Token {api_token}"})
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_an_unknown_page_answers_the_portals_own_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and b"<html" in response.content.lower()
