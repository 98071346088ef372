package gateway

import (
	"strings"

	"github.com/firetower-go/firetower/protocol"
	"github.com/gorilla/websocket"
)

// decode turns a client data frame into a FireInfo, or answers/drops it.
func (t *FireTower) decode(mt int, data []byte) *FireInfo {
	// No Context yet: it is made where the frame is handled (the executor,
	// or here on a read timeout), so that it sees the UserId the application
	// set, in OnConnect for instance, without a data race.
	fire := &FireInfo{MessageType: mt, Message: &TopicMessage{}}
	if mt != websocket.TextMessage {
		t.reject(fire, protocol.CodeBadRequest, "binary frames are not accepted")
		return nil
	}
	frame, err := protocol.Decode(t.version, data)
	fire.reqID = frame.ID
	if err != nil {
		t.reject(fire, protocol.CodeBadRequest, err.Error())
		return nil
	}
	fire.Message.Type, fire.Message.Topic, fire.Message.Data = frame.Type, frame.Topic, frame.Data
	fire.token = frame.Token
	switch frame.Kind(t.version) {
	case protocol.KindSubscribe, protocol.KindUnsubscribe:
		topics, err := frame.TopicList(t.gw.cfg.MaxTopicLength)
		if err != nil {
			t.reject(fire, codeOf(err), err.Error())
			return nil
		}
		fire.topics = topics
		fire.Message.Topic = strings.Join(topics, ",")
	case protocol.KindMessage:
		if t.version == protocol.V1 && frame.Topic == "" {
			t.reject(fire, protocol.CodeInvalidTopic, "topic is empty") // as the original did
			return nil
		}
	}
	return fire
}

// reject counts a refused client frame and answers it on v2.
func (t *FireTower) reject(fire *FireInfo, code int, msg string) {
	t.gw.stats.protocolErrors.Add(1)
	t.replyError(fire, code, msg)
}
