// A page written against the original firetower_v0.1.js API only:
// new firetower(addr, onopen), .subscribe([topics]), .unsubscribe([topics]),
// .publish(topic, data) returning {type, info}, .onmessage receiving an event
// whose .data is the JSON text, .onclose. It must keep working unchanged.
// Query parameters: topic (default /chat/world) and user.
var params = new URLSearchParams(location.search)
var topic = params.get('topic') || '/chat/world'
var user = params.get('user') || RndNum(7)
var received = [] // every .data handed to onmessage, for the tests

function RndNum(n) {
	var rnd = ''
	for (var i = 0; i < n; i++) rnd += Math.floor(Math.random() * 10)
	return rnd
}

function printMsg(from, content) {
	var li = document.createElement('li')
	li.className = 'msg other'
	var who = document.createElement('span')
	who.className = 'from'
	who.textContent = from + ': '
	var text = document.createElement('span')
	text.className = 'text'
	text.textContent = content
	li.appendChild(who)
	li.appendChild(text)
	document.getElementById('log').appendChild(li)
}

function setState(s) {
	var el = document.getElementById('state')
	el.textContent = s
	el.setAttribute('data-state', s === 'open' ? 'connected' : 'closed')
}

document.getElementById('topic').textContent = topic
document.getElementById('user').textContent = user

var bt = new firetower((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws', function () {
	bt.subscribe([topic])
	setState('open')
	printMsg('system', 'connected')
})

bt.onmessage = function (res) {
	received.push(res.data)
	var msg = JSON.parse(res.data)
	switch (msg.type) {
		case 'onSubscribe':
		case 'onUnsubscribe':
			document.getElementById('count').textContent = msg.data
			break
		case 'publish':
			printMsg(msg.from, msg.data)
			break
		case 'timeout':
			printMsg(msg.from, msg.data + ' (timeout)')
			break
	}
}

bt.onclose = function () {
	setState('closed')
	printMsg('system', 'disconnected')
}

document.getElementById('form').onsubmit = function (e) {
	e.preventDefault()
	var input = document.getElementById('msg')
	var res = bt.publish(topic, { from: user, data: input.value, type: 'publish' })
	if (res.type === 'success') input.value = ''
	else printMsg('system', 'error: ' + res.info)
}

document.getElementById('leave').onclick = function () {
	bt.unsubscribe([topic])
	document.getElementById('count').textContent = '–'
	printMsg('system', 'left ' + topic)
}
